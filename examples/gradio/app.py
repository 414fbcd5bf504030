"""An example Gradio app to run behind idlegate.

Each browser tab holds its own data in the server's memory (a 10 MiB table, as a data app
would), shows a clock that the server updates every second (a `gr.Timer`, not a person),
counts clicks, and runs a computation that takes as many seconds as asked. With sign-in on,
idlegate tells the app who signed in (the `X-Forwarded-User` header, read from
`gr.Request`).

    idlegate --idle-timeout 15m --app-kind gradio -- python examples/gradio/app.py

Memory: a tab's table is kept in `gr.State`. When idlegate ends a tab it closes the tab's
heartbeat, so Gradio runs the `unload` listeners and marks the session closed; in launcher
mode idlegate then has Gradio delete the session's `gr.State` values at once (Gradio itself
keeps a closed session's state for an hour). Behind `--upstream`, keep per-tab data where an
`unload` listener can drop it (see docs/frameworks.md).
"""

import time

import gradio as gr

MIB = 1024 * 1024


def new_table(request: gr.Request):
    # This tab's data: freed when its session ends.
    table = bytearray(10 * MIB)
    for i in range(0, len(table), 4096):
        table[i] = 1
    user = request.headers.get("x-forwarded-user")
    who = f"Signed in as: {user}" if user else "Not signed in"
    return table, f"this tab holds {len(table) // MIB} MiB", who


def clock():
    return f"Server clock: {time.strftime('%H:%M:%S')}"


def add_one(clicks):
    clicks += 1
    return clicks, f"clicks: {clicks}"


def compute(seconds, computed, progress=gr.Progress()):
    seconds = max(0.0, min(float(seconds or 0), 600.0))
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        progress((time.monotonic() - started) / seconds if seconds else 1.0)
        time.sleep(min(0.25, seconds))
    computed += 1
    return computed, f"computed: {computed} (took {seconds:g} s)"


def tab_ended(request: gr.Request):
    # Runs when the tab's session ends: the page was closed, or idlegate ended the tab.
    print(f"tab session {request.session_hash} ended", flush=True)


with gr.Blocks(title="idlegate example (Gradio)", analytics_enabled=False) as demo:
    gr.Markdown("## idlegate example (Gradio)")
    who = gr.Markdown()
    now = gr.Markdown(clock())
    gr.Timer(1).tick(clock, None, now)
    clicks = gr.State(0)
    add = gr.Button("Add one")
    clicks_text = gr.Markdown("clicks: 0")
    add.click(add_one, clicks, [clicks, clicks_text])
    seconds = gr.Number(3, label="Computation length (seconds)", minimum=0, maximum=600)
    computed = gr.State(0)
    run = gr.Button("Compute")
    result = gr.Markdown()
    run.click(compute, [seconds, computed], [computed, result])
    table = gr.State()
    held = gr.Markdown()
    demo.load(new_table, None, [table, held, who])
    demo.unload(tab_ended)

if __name__ == "__main__":
    demo.launch()
