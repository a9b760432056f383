# mmdeploy 1.3.1 deploy config: Mask R-CNN style instance segmentation (dets, labels and per-box
# masks, not pasted) for ONNX Runtime, dynamic batch, height and width; mmdeploy's
# configs/mmdet/instance-seg/instance-seg_onnxruntime_dynamic.py over our detection config.
_base_ = ['./detection_onnxruntime_dynamic.py']

onnx_config = dict(
    output_names=['dets', 'labels', 'masks'],
    dynamic_axes=dict(masks={0: 'batch', 1: 'num_dets', 2: 'height', 3: 'width'}))
codebase_config = dict(post_processing=dict(export_postprocess_mask=False))
