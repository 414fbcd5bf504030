"""Runs for as many seconds as the `sleep` query parameter says, so tests can hold a script
run open from a protocol-level client (a long computation a person is waiting for)."""

import time

import streamlit as st

seconds = float(st.query_params.get("sleep", "0") or 0)
if seconds:
    time.sleep(seconds)
st.session_state.runs = st.session_state.get("runs", 0) + 1
st.write(f"runs: {st.session_state.runs}")
st.write(f"slept: {seconds:g}")
