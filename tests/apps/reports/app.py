"""A small multipage app for idlegate's tests of where an ended tab starts again.

The home page links to a report page that reads its query parameters, so a test can open
`/report?id=42&view=chart` and check that a new session starts on that very page.

Wait for: "reports home" on the home page, "report 42 chart" on /report?id=42&view=chart.
"""

import streamlit as st

st.write("reports home")
