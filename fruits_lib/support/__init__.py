"""What the chain and the app stand on: decoding, the TFLite engine, the run store, the session, logs, plots, ..."""
