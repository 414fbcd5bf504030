"""A first script run that never finishes, for idlegate's tests.

The script loops forever, updating st.empty() placeholders (a metric and a
line chart) every second. The server sends session_status_changed with
script_is_running true once and never false, then a stream of delta
ForwardMsgs (about two a second); the page sends nothing after its first
rerun_script. A quiet browser with a busy server is a tab no person uses.
After a WebSocket reconnect the page sends a full-app rerun_script (the script
was running), which restarts the loop at tick 1.

Wait for: "tick N" (N grows by one each second).
"""

import time

import streamlit as st

st.write("live loop")
metric = st.empty()
chart = st.empty()

tick = 0
history: list[int] = []
while True:
    tick += 1
    history = (history + [tick % 10])[-30:]
    metric.metric("tick", f"tick {tick}")
    chart.line_chart(history)
    time.sleep(1)
