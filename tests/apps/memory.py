"""Memory-holding app for idlegate's tests.

Each session keeps a 50 MiB array in st.session_state, so the Streamlit
process's resident memory shows whether ended sessions were really freed.
Random data defeats any page sharing or compression. A `sleep` query parameter holds the
run open that many seconds (a computation a person waits for: a busy tab).
"""

import time

import numpy as np
import streamlit as st

BLOB_BYTES = 50 * 2**20

if "blob" not in st.session_state:
    st.session_state.blob = np.random.default_rng().random(BLOB_BYTES // 8)

seconds = float(st.query_params.get("sleep", "0") or 0)
if seconds:
    time.sleep(seconds)
st.write(f"blob: {st.session_state.blob.nbytes // 2**20} MiB")
