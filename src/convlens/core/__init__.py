"""The analysis core: rules, graph, receptive field, memory. It never imports torch."""
