"""A Gradio app that says when Gradio ends a session (its `unload` listener) and what the
request that held the session carried: for idlegate's tests of ending request-shaped
sessions."""

import gradio as gr


def unloaded(request: gr.Request):
    tab = request.headers.get("x-idlegate-tab", "none")
    print(f"unloaded {request.session_hash} tab-header={tab}", flush=True)


def add_one(n):
    return n + 1


with gr.Blocks(analytics_enabled=False) as demo:
    count = gr.Number(0, label="count")
    gr.Button("Add one").click(add_one, count, count)
    gr.State(0)
    demo.unload(unloaded)

if __name__ == "__main__":
    demo.launch()
