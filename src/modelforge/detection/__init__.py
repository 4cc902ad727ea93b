"""Object detection: COCO/YOLO boxes in, boxes out, mAP measured by pycocotools."""
