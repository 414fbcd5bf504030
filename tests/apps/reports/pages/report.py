"""The report page: shows its query parameters ("report <id> <view>")."""

import streamlit as st

st.write(f"report {st.query_params.get('id', '-')} {st.query_params.get('view', '-')}")
