"""File upload app for idlegate's tests.

An upload is a person's action that mostly travels over plain HTTP: the page
sends BackMsg.file_urls_request (file_names, session_id) over the WebSocket,
gets file_urls_response with upload_url /_stcore/upload_file/<session_id>/<file_id>,
PUTs the file there as multipart/form-data (X-Xsrftoken header matching the
_streamlit_xsrf cookie, else 403; answer 204), then sends a full-app
rerun_script whose widget_states carry the file_uploader_state_value.
Removing the file sends DELETE to the same URL and a rerun with an empty state.

Wait for: "upload ready", then after an upload "uploaded: <name> <size> bytes";
"clicks: N" for the button.
"""

import streamlit as st

st.write("upload ready")
st.session_state.setdefault("clicks", 0)

f = st.file_uploader("Upload a file", key="upload")
if f is not None:
    st.write(f"uploaded: {f.name} {f.size} bytes")

if st.button("Click me", key="click"):
    st.session_state.clicks += 1
st.write(f"clicks: {st.session_state.clicks}")
