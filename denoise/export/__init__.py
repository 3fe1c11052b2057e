"""Export (needs the `train` extra): checkpoint -> verified ONNX."""
