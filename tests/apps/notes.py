"""Notes app for idlegate's tests: a text area whose value only reaches the server when the
person submits it (leaves the field or presses Ctrl+Enter), so typing alone sends nothing."""

import streamlit as st

st.title("Notes")
notes = st.text_area("Your notes", key="notes", height=200)
st.write(f"saved characters: {len(notes)}")
