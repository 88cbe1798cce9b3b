"""The data plane shared by publisher and agent: chunking, tensor and graph deltas, manifest
diffing, golden vectors. Pure bytes and numpy: no I/O, no onnx/onnxruntime, no Kubernetes.
"""
