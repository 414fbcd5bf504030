"""Custom component v2 (`st.components.v2.component`) timer app for idlegate's tests.

A v2 component has no iframe: its JS (delivered inside the ForwardMsg and
imported as a blob: ES module) runs in the main document, and its HTML is
mounted in an open shadow root of the page (host div data-testid=
"stBidiComponentIsolated", since isolate_styles=True). This one calls
setStateValue("count", n) and setTriggerValue("tick", n) every 2 seconds with no
person involved. Both calls in one tick are batched into one full-app
BackMsg.rerun_script (fragment_id empty, is_auto_rerun false) with
widget_states "$$ID-<hash>-timer" json_value '{"count":n}' and
"$$STREAMLIT_INTERNAL_KEY_$$ID-<hash>-timer__events" json_trigger_value
'[{"event":"tick","value":n}]'. The button is there for real activity.

Wait for: "v2 count: 0" (then "v2 count: 1", "2", ...) and "clicks: N".
"""

import streamlit as st

_JS = """
export default function (component) {
    const { setStateValue, setTriggerValue, parentElement } = component;
    const out = parentElement.querySelector("#v2-status");
    const id = setInterval(() => {
        window.__idlegateV2Count = (window.__idlegateV2Count || 0) + 1;
        const n = window.__idlegateV2Count;
        if (out) out.textContent = "v2 timer sent: " + n;
        setStateValue("count", n);
        setTriggerValue("tick", n);
    }, 2000);
    // Streamlit calls this when the component unmounts (or is set up again).
    return () => clearInterval(id);
}
"""

_timer = st.components.v2.component(
    "idlegate_timer_v2",
    html='<div id="v2-status">v2 timer: waiting</div>',
    js=_JS,
)

st.session_state.setdefault("clicks", 0)

result = _timer(
    key="timer",
    default={"count": 0},
    on_count_change=lambda: None,
    on_tick_change=lambda: None,
)
st.write(f"v2 count: {result.count}")
st.write(f"v2 tick: {result.tick}")

if st.button("Click me", key="click"):
    st.session_state.clicks += 1
st.write(f"clicks: {st.session_state.clicks}")
