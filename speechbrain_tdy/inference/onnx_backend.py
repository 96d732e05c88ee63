"""Running an exported ONNX embedding model (see :mod:`speechbrain_tdy.export.onnx_graph`)
with onnxruntime, as a drop-in for the PyTorch front end and embedding model."""
import torch

from speechbrain_tdy.storage.reading import check_regular_file

#: Input and output names of the graph.
GRAPH_INPUTS, GRAPH_OUTPUTS = ["wavs", "wav_lens"], ["embeddings"]


class OnnxEmbeddingModel:
    """wavs (batch, samples), wav_lens (batch,) -> embeddings (batch, dim) with onnxruntime.

    Arguments
    ---------
    path : str or Path
        An ONNX file written by ``speechbrain-tdy onnx``.
    num_threads : int or None
        Threads of onnxruntime's operators (None: ``torch.get_num_threads()``,
        so that both backends use the same number).
    """

    def __init__(self, path, num_threads=None):
        try:
            import onnxruntime
        except ImportError as error:
            raise ImportError("The ONNX backend needs onnxruntime: pip install 'speechbrain-tdy[onnx]'") from error
        check_regular_file(path, "an ONNX model file")  # before onnxruntime opens it: a FIFO would block
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads or torch.get_num_threads()
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for unreadable files
            raise ValueError(f"{path}: not an ONNX model that onnxruntime can load ({error})") from error
        names = ([i.name for i in self.session.get_inputs()], [o.name for o in self.session.get_outputs()])
        if names != (GRAPH_INPUTS, GRAPH_OUTPUTS):
            raise ValueError(f"{path}: expected inputs (wavs, wav_lens) and output embeddings, got {names}")
        self.path = path

    def __call__(self, wavs, wav_lens):
        """wavs: (batch, samples) float; wav_lens: (batch,) relative lengths.
        Returns a float32 CPU tensor (batch, dim)."""
        inputs = {"wavs": wavs.detach().float().cpu().numpy(), "wav_lens": wav_lens.detach().float().cpu().numpy()}
        return torch.from_numpy(self.session.run(["embeddings"], inputs)[0])
