"""A long report page for idlegate's tests.

Three hundred numbered paragraphs, so a person can scroll (and read) for a long
time. Scrolling sends nothing to the server. The element that scrolls is
<main data-testid="stMain">, not the window, and scroll events do not bubble:
a listener must be a capturing one on document (or on that element).

Wait for: "report ready" (top) and "paragraph 300" / "end of report" (bottom).
"""

import streamlit as st

st.write("report ready")
st.title("Long report")

_LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod "
    "tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, "
    "quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat."
)

st.markdown(
    "\n\n".join(f"**paragraph {n}.** {_LOREM}" for n in range(1, 301))
)
st.write("end of report")
