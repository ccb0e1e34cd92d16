"""Damage model: the grade scale, preprocessing shared with training, and ONNX Runtime inference.

Nothing here imports torch: serving runs on onnxruntime alone.
"""
