"""Running a trained model: precision per device, checkpoints, prediction over a loader, a fold's best model and
the ONNX Runtime stand-in. Below the competitions, so that their training objects (two-stage, reconstruction) use it
too, and above the models."""
