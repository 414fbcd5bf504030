"""Second page of the multipage app used by idlegate's tests."""

import streamlit as st

st.title("Second page")
name = st.text_input("Name", key="name")
st.write(f"Hello, {name}")
