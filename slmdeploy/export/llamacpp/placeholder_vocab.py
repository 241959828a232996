"""A placeholder SentencePiece vocabulary for zoo models, which have weights but no tokenizer.

llama.cpp's converter refuses a checkpoint without a tokenizer it knows, and a GGUF carries
its vocabulary. Zoo models are random-weight architectures driven by token ids (the
harness draws them), so any vocabulary of the right size serves: this one has ``<unk>``,
``<s>``, ``</s>`` and the 256 byte pieces ``<0x00>``..``<0xFF>`` (llama.cpp looks up the
newline byte when it loads a SentencePiece vocabulary); the converter pads the rest of
``vocab_size`` with ``[PAD<i>]`` tokens. Text in and out of such a model means nothing, as
with any random-weight model. A checkpoint brings its own tokenizer and never gets this.
"""

from __future__ import annotations

from pathlib import Path

FILE = "tokenizer.model"


def write(directory: Path) -> Path:
    """Write ``tokenizer.model`` into ``directory`` (a checkpoint the converter will read)."""
    from sentencepiece import sentencepiece_model_pb2 as spm

    proto = spm.ModelProto()
    proto.trainer_spec.model_type = spm.TrainerSpec.BPE
    proto.trainer_spec.byte_fallback = True
    proto.trainer_spec.unk_id, proto.trainer_spec.bos_id, proto.trainer_spec.eos_id = 0, 1, 2
    proto.trainer_spec.pad_id = -1
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = False
    kinds = spm.ModelProto.SentencePiece
    for text, kind in (("<unk>", kinds.UNKNOWN), ("<s>", kinds.CONTROL), ("</s>", kinds.CONTROL)):
        proto.pieces.add(piece=text, score=0.0, type=kind)
    for byte in range(256):
        proto.pieces.add(piece=f"<0x{byte:02X}>", score=0.0, type=kinds.BYTE)
    proto.trainer_spec.vocab_size = len(proto.pieces)
    path = directory / FILE
    path.write_bytes(proto.SerializeToString())
    return path
