"""Counter app for idlegate's tests.

Counts script runs and button clicks in st.session_state, so a test can tell
whether a session survived (the counters keep growing) or was replaced (they
start again at 1 and 0).
"""

import streamlit as st

st.session_state.runs = st.session_state.get("runs", 0) + 1
st.session_state.setdefault("clicks", 0)

if st.button("Increment", key="inc"):
    st.session_state.clicks += 1

st.write(f"runs: {st.session_state.runs}")
st.write(f"clicks: {st.session_state.clicks}")

value = st.slider("Value", min_value=0, max_value=100, value=50, key="s")
st.write(f"value: {value}")
