"""Auto-refreshing fragment app for idlegate's tests.

The fragment reruns every second without any user action. Those timer-driven
reruns must not count as human activity, so a session showing only this
page still times out; the button is there to produce real activity.
"""

import time

import streamlit as st

st.session_state.runs = st.session_state.get("runs", 0) + 1
st.session_state.setdefault("ticks", 0)


@st.fragment(run_every="1s")
def clock() -> None:
    st.session_state.ticks += 1
    st.write(f"time: {time.strftime('%H:%M:%S')}")
    st.write(f"ticks: {st.session_state.ticks}")


clock()

st.button("Poke", key="poke")
st.write(f"runs: {st.session_state.runs}")
