"""A Panel app whose page changes a widget's value by itself: a Player that plays in a loop
from the start (its value moves every 200 ms in the page, sent to the server each time)."""

import panel as pn

player = pn.widgets.Player(
    name="Player", start=0, end=50, value=0, interval=200, loop_policy="loop", direction=1
)
shown = pn.pane.Markdown("frame: 0")


def on_value(event):
    shown.object = f"frame: {event.new}"


player.param.watch(on_value, "value")
pn.Column("## Player", player, shown, pn.pane.Markdown("clicks: 0")).servable()
