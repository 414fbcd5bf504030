"""Download-holding app for idlegate's memory tests.

Each session offers a 40 MiB st.download_button, which Streamlit keeps in its media file
manager (served at /media/<id>) until the session is shut down and two orphan sweeps have
run. Random bytes defeat page sharing. Optional query parameter `kind` picks what else the
session holds, for the other memory measurements:

- `kind=download` (default): the download button.
- `kind=audio`: a 40 MiB st.audio from bytes (media, freed on the first sweep).
- `kind=table`: a 200,000-row lazily loaded st.dataframe.
- `kind=state`: 40 MiB in st.session_state.

Wait for: "holding <kind>".
"""

import numpy as np
import pandas as pd
import streamlit as st

SIZE = 40 * 2**20
kind = st.query_params.get("kind", "download")

if "data" not in st.session_state:
    st.session_state.data = np.random.default_rng().bytes(SIZE)

if kind == "download":
    st.download_button("Download", st.session_state.data, file_name="data.bin")
elif kind == "audio":
    st.audio(st.session_state.data, format="audio/wav")
elif kind == "table":
    if "table" not in st.session_state:
        rng = np.random.default_rng()
        st.session_state.table = pd.DataFrame(rng.random((200_000, 25)))
    st.dataframe(st.session_state.table)
st.write(f"holding {kind}")
