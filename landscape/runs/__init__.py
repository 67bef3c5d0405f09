"""A run rebuilt from its config or store: the dataset, model and engine built once
(`build`), and θ at any step replayed exactly (`replay`)."""
