"""Shows the names of the cookies the app received (st.context.cookies), sorted."""

import streamlit as st

st.write(f"cookies: {','.join(sorted(st.context.cookies.keys())) or '-'}")
