"""Notes page of the idlegate demo: text kept in the session.

Notes live in st.session_state, so they survive page switches and brief
disconnects but disappear when idlegate ends the idle session.
"""

import streamlit as st

st.session_state.runs = st.session_state.get("runs", 0) + 1
st.session_state.setdefault("notes", "")

st.title("Notes")

text = st.text_area("Your notes", value=st.session_state.notes, height=200)
if st.button("Save", key="save"):
    st.session_state.notes = text
    st.success("Saved in this session.")

words = len(st.session_state.notes.split())
st.write(f"Saved notes: {words} word{'s' if words != 1 else ''}")
st.metric("Script runs this session", st.session_state.runs)
