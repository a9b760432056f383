# mmdeploy 1.3.1 deploy config: end-to-end detection (dets, labels) for ONNX Runtime with dynamic batch,
# height and width. mmdeploy's wheel ships no configs; the fields and values are those of its
# configs/mmdet/detection/detection_onnxruntime_dynamic.py, with two changes: the import of our fix
# for torch >= 2.9 (mmdet_efficientvit/compat/mmdeploy.py; loading this config imports it, also in the
# process that mmdeploy's tools/deploy.py spawns), and opset 17 (mmdeploy's is 11), the opset of
# export_onnx.py: the two graphs then compute the same numbers (opset 11 differs by up to ~1e-5 in
# scores), and RoiAlign-16 has aligned=True natively. Usage: docs/deployment.md, "mmdeploy on PyTorch".
custom_imports = dict(imports=['mmdet_efficientvit.compat.mmdeploy'], allow_failed_imports=False)

onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=17,
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=['dets', 'labels'],
    input_shape=None,
    optimize=True,
    dynamic_axes=dict(
        input={0: 'batch', 2: 'height', 3: 'width'},
        dets={0: 'batch', 1: 'num_dets'},
        labels={0: 'batch', 1: 'num_dets'}))
# The model's test_cfg overrides score_threshold, iou_threshold and keep_top_k (max_per_img); mmdeploy
# adds its top-k over all levels (pre_top_k) and a per-class cap (max_output_boxes_per_class) before
# NMS.
codebase_config = dict(
    type='mmdet',
    task='ObjectDetection',
    model_type='end2end',
    post_processing=dict(
        score_threshold=0.05,
        confidence_threshold=0.005,  # YOLOv3 only
        iou_threshold=0.5,
        max_output_boxes_per_class=200,
        pre_top_k=5000,
        keep_top_k=100,
        background_label_id=-1))
backend_config = dict(type='onnxruntime')
