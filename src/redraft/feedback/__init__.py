"""Human feedback: a labelling store, a web app and API, simulated annotators, dataset export/import."""
