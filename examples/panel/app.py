"""An example Panel app to run behind idlegate.

Each browser tab holds its own data in the server's memory (a 10 MiB table, as a data app
would), shows a clock that a periodic callback updates every second (the server, not a
person), counts clicks, and runs a computation that takes as many seconds as asked.

    idlegate --idle-timeout 15m -- panel serve examples/panel/app.py
"""

import time

import panel as pn

# This tab's data: freed when its session ends.
table = bytearray(10 * 1024 * 1024)
for i in range(0, len(table), 4096):
    table[i] = 1

clock = pn.pane.Markdown("Server clock: " + time.strftime("%H:%M:%S"))
clicks = pn.pane.Markdown("clicks: 0")
add = pn.widgets.Button(name="Add one", css_classes=["add"])
seconds = pn.widgets.IntInput(name="Computation length (seconds)", value=3, start=0, end=600)
compute = pn.widgets.Button(name="Compute", css_classes=["compute"])
result = pn.pane.Markdown("computed: 0")
held = pn.pane.Markdown(f"this tab holds {len(table) // (1024 * 1024)} MiB")
user = pn.state.user or pn.state.headers.get("X-Forwarded-User")
who = pn.pane.Markdown(f"Signed in as: {user}" if user else "Not signed in")


def tick():
    clock.object = "Server clock: " + time.strftime("%H:%M:%S")


def on_add(event):
    clicks.object = f"clicks: {add.clicks}"


def on_compute(event):
    length = max(0, min(int(seconds.value or 0), 600))
    time.sleep(length)
    result.object = f"computed: {compute.clicks} (took {length} s)"


add.on_click(on_add)
compute.on_click(on_compute)
pn.state.add_periodic_callback(tick, period=1000)

pn.Column(
    "## idlegate example (Panel)", who, clock, add, clicks, seconds, compute, result, held
).servable(title="idlegate example (Panel)")
