"""A text area inside a components.v1.html iframe, for idlegate's tests.

st.components.v1.html renders its markup in an iframe with srcdoc (no src,
title "st.iframe", sandbox "... allow-same-origin allow-scripts ..."), so it is
same-origin with the page: the top page's JS can read iframe.contentDocument,
and a keydown listener added on iframe.contentWindow sees the keys a person
types into the textarea (keydown listeners on the top window do not). Typing
there sends nothing to the server.

Wait for: "frame ready", and the iframe's <textarea id="notes">.
"""

import streamlit as st
import streamlit.components.v1 as components

st.write("frame ready")

components.html(
    """
    <label for="notes">Notes (in an iframe)</label><br>
    <textarea id="notes" rows="6" cols="60"></textarea>
    """,
    height=180,
)
