"""Export: ONNX / TFLite files of blocks and whole networks, with verification."""
