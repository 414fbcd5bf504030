"""Main page of the multipage app used by idlegate's tests."""

import streamlit as st

st.title("Multipage home")
st.checkbox("Home checkbox", key="home_check")
