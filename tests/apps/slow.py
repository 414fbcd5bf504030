"""Slow-job app for idlegate's tests.

Clicking "Run slow job" keeps the script running for SLOW_SECONDS (default 6)
seconds, so tests can check how idlegate treats a session whose script is
still busy. Loading the page is fast.
"""

import os
import time

import streamlit as st

st.write("ready")

if st.button("Run slow job", key="slow"):
    time.sleep(float(os.environ.get("SLOW_SECONDS", "6")))
    st.write("done")
