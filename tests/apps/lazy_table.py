"""Lazily loaded dataframe in an auto-refreshing fragment, for idlegate's tests.

A 200,000-row table is above Streamlit's 150,000-row threshold, so the grid
gets only its first rows in the ForwardMsg and fetches the others with
BackMsg.backend_operation_request (dataframe_chunk: source_id, offset, limit
1000, sort). The fragment reruns every 5 seconds with nobody touching the page
(BackMsg.rerun_script with is_auto_rerun true and the fragment's id). Each
refresh gives the table a new source_id, so once a person has sorted the grid
or scrolled it past its first 1000 rows, every refresh is followed, about 0.4 s
later and with nobody touching the page, by a dataframe_chunk request for the
same offset/sort. Such requests are not a person's activity either.

Wait for: "refreshes: N" (N grows by one every 5 seconds) and "rows: 200000".
"""

import numpy as np
import pandas as pd
import streamlit as st

ROWS = 200_000


@st.cache_data
def table() -> pd.DataFrame:
    i = np.arange(ROWS, dtype=np.int64)
    return pd.DataFrame(
        {
            "id": i,
            "square_mod": (i * i) % 9973,
            "half": i / 2.0,
            "bucket": i % 17,
        }
    )


st.session_state.setdefault("refreshes", 0)


@st.fragment(run_every="5s")
def grid() -> None:
    st.session_state.refreshes += 1
    st.write(f"refreshes: {st.session_state.refreshes}")
    df = table()
    st.write(f"rows: {len(df)}")
    st.dataframe(df, key="grid", height=400)


grid()
