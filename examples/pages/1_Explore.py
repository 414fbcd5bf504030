"""Explore page of the idlegate demo: a histogram of generated data."""

import numpy as np
import streamlit as st

st.session_state.runs = st.session_state.get("runs", 0) + 1

st.title("Explore")

samples = st.slider("Samples", min_value=100, max_value=10_000, value=1_000, step=100, key="samples")
spread = st.number_input("Spread", min_value=0.1, max_value=5.0, value=1.0, step=0.1, key="spread")

rng = np.random.default_rng(7)
data = rng.normal(0.0, spread, samples)
counts, edges = np.histogram(data, bins=40, range=(-10, 10))
centers = ((edges[:-1] + edges[1:]) / 2).round(2)
st.bar_chart({"value": centers, "count": counts}, x="value", y="count")

st.write(f"Mean {data.mean():.3f}, standard deviation {data.std():.3f}")
st.metric("Script runs this session", st.session_state.runs)
