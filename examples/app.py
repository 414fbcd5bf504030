"""idlegate demo: a small multipage Streamlit app.

Run it behind idlegate with scripts/run-example.sh, then leave the tab alone
for longer than the idle timeout: the session ends, its memory is freed, and
the browser lands on idlegate's "session ended" page. The counters below show
that a session lives on as long as you keep using it.
"""

import numpy as np
import streamlit as st

st.set_page_config(page_title="idlegate demo", page_icon="⏱️")

st.session_state.runs = st.session_state.get("runs", 0) + 1
st.session_state.setdefault("clicks", 0)

st.title("idlegate demo")
st.write(
    "This page is served through **idlegate**. Interact with it and the "
    "session stays alive; leave it idle past the timeout and the session ends."
)

points = st.slider("Points", min_value=10, max_value=500, value=100, step=10, key="points")
seed = st.number_input("Seed", min_value=0, max_value=9999, value=42, key="seed")

# A seeded random walk: the same inputs always draw the same chart.
rng = np.random.default_rng(int(seed))
walk = rng.standard_normal((points, 3)).cumsum(axis=0)
st.line_chart({name: walk[:, i] for i, name in enumerate(["A", "B", "C"])}, x_label="step", y_label="position")

if st.button("Click me", key="click"):
    st.session_state.clicks += 1

col_runs, col_clicks = st.columns(2)
col_runs.metric("Script runs this session", st.session_state.runs)
col_clicks.metric("Button clicks", st.session_state.clicks)

st.caption("Other pages: Explore (a histogram) and Notes (a text area).")
