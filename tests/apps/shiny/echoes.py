"""A Shiny app that changes its own inputs every second, nobody touching the page: a timer
updates a slider (`ui.update_slider`), redraws a text input with a new default
(`render.ui`), and shows a modal whose input has a new default each time. The page sends
the app every one of those values back."""

import random

from shiny import App, reactive, render, ui

app_ui = ui.page_fluid(
    ui.input_slider("n", "N", min=0, max=1000, value=0),
    ui.output_ui("form"),
    ui.p(ui.output_text("seen", inline=True)),
    ui.p("clicks: 0"),
)


def server(input, output, session):
    @reactive.effect
    def tick():
        reactive.invalidate_later(1)
        ui.update_slider("n", value=random.randint(1, 1000))

    @render.ui
    def form():
        reactive.invalidate_later(1)
        return ui.input_text("note", "Note", value=str(random.random()))

    @reactive.effect
    def modal():
        reactive.invalidate_later(3)
        with reactive.isolate():
            default = str(random.random())
        ui.modal_show(
            ui.modal(ui.input_text("answer", "Answer", value=default), easy_close=True)
        )

    @render.text
    def seen():
        return f"slider: {input.n()} note: {input.note()}"


app = App(app_ui, server)
