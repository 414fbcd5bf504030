"""Writes the request headers the app saw on its WebSocket upgrade, one per line, so tests can
check what reaches the app through idlegate."""

import streamlit as st

for name in ("Host", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Origin"):
    st.write(f"{name}: {st.context.headers.get(name, '-')}")
