"""A page whose own script imitates a person, for idlegate's tests.

Every 2 seconds a script in a `components.html` frame (same-origin) moves focus between
inputs, clicks a checkbox in its frame and the app's own st.checkbox in the page (which
makes the app rerun), and dispatches a synthetic key press. Browsers mark the focus and
checkbox change events from such script calls as trusted; none of this is a person.

Wait for: "scripted input ready", then "auto: True"/"auto: False" flipping.
"""

import streamlit as st
import streamlit.components.v1 as components

st.write("scripted input ready")
auto = st.checkbox("Auto", key="auto")
st.write(f"auto: {auto}")
st.text_input("Name", key="name")
components.html(
    """
<input id="a"><input id="b"><input type="checkbox" id="c">
<script>
  let n = 0;
  setInterval(() => {
    n += 1;
    document.getElementById(n % 2 ? "a" : "b").focus();
    document.getElementById("c").click();
    const page = window.parent.document;
    const box = page.querySelector("input[type=checkbox]");
    if (box) box.click();
    const text = page.querySelector("input[type=text]");
    if (text) text.focus();
    window.dispatchEvent(new KeyboardEvent("keydown", { key: "a" }));
  }, 2000);
</script>
""",
    height=60,
)
