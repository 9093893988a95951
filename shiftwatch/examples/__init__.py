"""Example models and image sets, outside the product: used by the demo, the benchmarks and the tests as a user's would be.

``digits`` (scikit-learn's digits at 32x32, corruptions, PNG codec) and ``digits_cnn`` (the demo's CNN);
``textured_digits`` and ``resnet`` (ResNet-18 on 3x96x96, the realistic example). The networks are
registered through the model contract (``shiftwatch.retrain.model_contract``), nothing else.
"""
