"""The clinical time-series encoder f_ehr (paper section 3.1) and the EHR-only LSTM baseline.

f_ehr is a stack of single-layer unidirectional LSTMs (76 -> 256 -> 256 in the paper), run on
sequences packed by their true length, so padding never enters the computation. v_ehr is the last
layer's final hidden state after dropout (0.3); as in the original code, the dropped-out vector is
both the feature handed to fusion and the input of the classifier g_ehr. Unlike the original
(``ht.squeeze()``), a batch of one sample keeps its batch dimension.

MMTM and DAFT act between the first and the second LSTM layer, so the encoder also exposes the
padded per-step output of its first layer and a way to finish the encoding from such a sequence.

Initialisation follows the original: Xavier-uniform input-to-hidden weights, orthogonal
hidden-to-hidden weights, zero biases; the EHR classifier gets Xavier-uniform weights and zero bias.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from medfuse_bench.errors import MedfuseError
from medfuse_bench.models.base import MedfuseModel
from medfuse_bench.models.batch import ehr_inputs

EHR_FEATURES = 76


def init_lstm(lstm: nn.LSTM) -> None:
    """Xavier-uniform input weights, orthogonal hidden weights, zero biases (the original's scheme)."""
    for layer in range(lstm.num_layers):
        nn.init.xavier_uniform_(getattr(lstm, f"weight_ih_l{layer}"))
        nn.init.orthogonal_(getattr(lstm, f"weight_hh_l{layer}"))
        nn.init.zeros_(getattr(lstm, f"bias_ih_l{layer}"))
        nn.init.zeros_(getattr(lstm, f"bias_hh_l{layer}"))


def init_linear(linear: nn.Linear) -> nn.Linear:
    """Xavier-uniform weight and zero bias, as the original gives the EHR classifier."""
    nn.init.xavier_uniform_(linear.weight)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)
    return linear


def time_mean(sequence: Tensor, lengths: Tensor, *, include_padding: bool = False) -> Tensor:
    """Mean over time of a padded sequence [B, T, D] -> [B, D].

    By default only the first ``lengths[b]`` steps of sample b count. ``include_padding=True`` divides by
    the padded length T instead, as the original MMTM/DAFT blocks do, so a sample's summary then depends on
    the longest stay in its batch.

    >>> seq = torch.tensor([[[1.0], [3.0]], [[2.0], [0.0]]])
    >>> time_mean(seq, torch.tensor([2, 1])).flatten().tolist()
    [2.0, 2.0]
    >>> time_mean(seq, torch.tensor([2, 1]), include_padding=True).flatten().tolist()
    [2.0, 1.0]
    """
    if include_padding:
        return sequence.mean(dim=1)
    lengths = lengths.to(sequence.device)
    valid = torch.arange(sequence.shape[1], device=sequence.device)[None, :] < lengths[:, None]
    total = (sequence * valid.unsqueeze(-1).to(sequence.dtype)).sum(dim=1)
    return total / lengths.to(total.dtype).unsqueeze(-1)


class EHREncoder(nn.Module):
    """f_ehr: stacked single-layer LSTMs; ``forward(ehr, lengths)`` returns v_ehr [B, hidden_dim]."""

    def __init__(
        self, input_dim: int = EHR_FEATURES, hidden_dim: int = 256, layers: int = 2, dropout: float = 0.3
    ) -> None:
        super().__init__()
        if layers < 1:
            raise MedfuseError(f"ehr_layers must be at least 1, got {layers}")
        if not 0.0 <= dropout < 1.0:
            raise MedfuseError(f"dropout must lie in [0, 1), got {dropout}")
        self.input_dim = input_dim
        self.feats_dim = hidden_dim
        # Separate single-layer LSTMs rather than one num_layers LSTM, so MMTM/DAFT can act in between.
        self.layers = nn.ModuleList(
            nn.LSTM(input_dim if index == 0 else hidden_dim, hidden_dim, batch_first=True) for index in range(layers)
        )
        self.dropout = nn.Dropout(dropout)
        for lstm in self.layers:
            init_lstm(lstm)

    def _check_features(self, ehr: Tensor) -> None:
        if ehr.shape[-1] != self.input_dim:
            raise MedfuseError(
                f"batch['ehr'] has {ehr.shape[-1]} features per step but the EHR encoder expects {self.input_dim}"
            )

    def _run(self, packed: PackedSequence, start: int, stop: int) -> tuple[PackedSequence, Tensor]:
        hidden = None
        for lstm in self.layers[start:stop]:
            packed, (hidden, _) = lstm(packed)
        assert hidden is not None
        # hidden is [1, B, H] in the original batch order (packing with enforce_sorted=False unsorts it).
        return packed, hidden[-1]

    def forward(self, ehr: Tensor, lengths: Tensor) -> Tensor:
        self._check_features(ehr)
        packed = pack_padded_sequence(ehr, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, last_hidden = self._run(packed, 0, len(self.layers))
        return self.dropout(last_hidden)

    def first_layer_sequence(self, ehr: Tensor, lengths: Tensor) -> Tensor:
        """Per-step output of the first LSTM layer, zero-padded to the longest stay: [B, max(lengths), H]."""
        self._check_features(ehr)
        packed = pack_padded_sequence(ehr, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed, _ = self._run(packed, 0, 1)
        sequence, _ = pad_packed_sequence(packed, batch_first=True)
        return sequence

    def finish_from_sequence(self, sequence: Tensor, lengths: Tensor) -> Tensor:
        """v_ehr from a (possibly transformed) first-layer sequence: the remaining layers, then dropout."""
        if len(self.layers) < 2:
            raise MedfuseError("MMTM and DAFT sit between two LSTM layers; set ehr_layers to at least 2")
        packed = pack_padded_sequence(sequence, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, last_hidden = self._run(packed, 1, len(self.layers))
        return self.dropout(last_hidden)


class EHRLSTM(MedfuseModel):
    """The EHR-only baseline: f_ehr followed by the linear classifier g_ehr."""

    family = "ehr_lstm"

    def __init__(
        self,
        num_classes: int,
        *,
        ehr_input_dim: int = EHR_FEATURES,
        ehr_hidden_dim: int = 256,
        ehr_layers: int = 2,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.ehr_encoder = EHREncoder(ehr_input_dim, ehr_hidden_dim, ehr_layers, dropout)
        self.classifier = init_linear(nn.Linear(ehr_hidden_dim, num_classes))

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        ehr, lengths = ehr_inputs(batch, self.family)
        features = self.ehr_encoder(ehr, lengths)
        return {"logits": self.classifier(features), "features": features}
