"""An app with its own sign-out button (st.logout), for idlegate's tests.

st.logout() sends the page to <base>/auth/logout; behind idlegate's sign-in that signs the
person out of idlegate too, in every tab.

Wait for: "logout app"; the button is "Sign out".
"""

import streamlit as st

st.write("logout app")
if st.button("Sign out"):
    st.logout()
