"""Custom component (v1) timer app for idlegate's tests.

The component in components/timer_v1/index.html is a local, npm-free v1 custom
component that speaks the postMessage protocol itself (componentReady with
apiVersion 1, setFrameHeight) and calls `streamlit:setComponentValue` with an
incrementing counter every 2 seconds, like streamlit-autorefresh. No person is
involved, yet every 2 seconds the browser sends a full-app BackMsg.rerun_script
(fragment_id empty, is_auto_rerun false) whose widget_states hold the
component's widget ("$$ID-<hash>-timer") with json_value "1", "2", ...
A click on the button sends the same shape plus "$$ID-<hash>-click" with
trigger_value true.

The component is an iframe with src /component/component_timer.idlegate_timer_v1/
index.html?streamlitUrl=... on the app's own origin and
sandbox="... allow-same-origin allow-scripts ...", so the page's JS can read
iframe.contentDocument.

Wait for: "component value: 0", then "component value: 1", "2", ... and "clicks: N".
"""

from pathlib import Path

import streamlit as st
import streamlit.components.v1 as components

_timer = components.declare_component(
    "idlegate_timer_v1",
    path=str(Path(__file__).resolve().parent / "components" / "timer_v1"),
)

st.session_state.setdefault("clicks", 0)

value = _timer(key="timer", default=0, interval_ms=2000)
st.write(f"component value: {value}")

if st.button("Click me", key="click"):
    st.session_state.clicks += 1
st.write(f"clicks: {st.session_state.clicks}")
