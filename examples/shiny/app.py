"""An example Shiny for Python app to run behind idlegate.

Each browser tab holds its own data in the server's memory (a 10 MiB table, as a data app
would), shows a clock that the server updates every second (a timer, not a person), counts
clicks, and runs a computation that takes as many seconds as asked. With sign-in on,
idlegate tells the app who signed in (`session.user`).

    idlegate --idle-timeout 15m -- shiny run examples/shiny/app.py
"""

import time

from shiny import App, reactive, render, ui

app_ui = ui.page_fluid(
    ui.h2("idlegate example (Shiny)"),
    ui.p(ui.output_text("who", inline=True)),
    ui.p("Server clock: ", ui.output_text("clock", inline=True)),
    ui.input_action_button("add", "Add one"),
    ui.p(ui.output_text("clicks", inline=True)),
    ui.input_numeric("seconds", "Computation length (seconds)", value=3, min=0, max=600),
    ui.input_action_button("compute", "Compute"),
    ui.p(ui.output_text("result", inline=True)),
    ui.p(ui.output_text("held", inline=True)),
)


def server(input, output, session):
    # This tab's data: freed when its session ends.
    table = bytearray(10 * 1024 * 1024)
    for i in range(0, len(table), 4096):
        table[i] = 1

    @render.text
    def who():
        user = session.user
        return f"Signed in as: {user}" if user else "Not signed in"

    @render.text
    def clock():
        reactive.invalidate_later(1)
        return time.strftime("%H:%M:%S")

    @render.text
    def clicks():
        return f"clicks: {input.add()}"

    @render.text
    @reactive.event(input.compute)
    def result():
        seconds = max(0.0, min(float(input.seconds() or 0), 600.0))
        time.sleep(seconds)
        return f"computed: {input.compute()} (took {seconds:g} s)"

    @render.text
    def held():
        return f"this tab holds {len(table) // (1024 * 1024)} MiB"


app = App(app_ui, server)
