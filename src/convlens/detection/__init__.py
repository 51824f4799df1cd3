"""Object detection after the network: boxes, IoU, NMS, YOLO decoding, anchors and mAP.

NumPy throughout (torch tensors accepted where the formula is the same); the YOLO
decoders and the tiny detector need torch and import it themselves.
"""
