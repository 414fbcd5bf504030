"""Shows who the app believes the person is: the identity header on the WebSocket upgrade
and st.user (which reads it when Streamlit trusts that header)."""

import streamlit as st

st.write(f"header user: {st.context.headers.get('X-Forwarded-User', '-')}")
st.write(f"header groups: {st.context.headers.get('X-Forwarded-Groups', '-')}")
st.write(f"st.user name: {st.user.get('name', '-')}")
st.write(f"st.user sub: {st.user.get('sub', '-')}")
