"""The original's ``Discretizer`` and ``Normalizer``, ported line for line: the oracle the time-series stage is
checked against (the stage stores what these compute under the ``original`` preset with ``normalizer: train_split``),
and the code ``python -m benchmarks.etl --baseline`` times as the original approach's discretisation.
"""

from __future__ import annotations

import numpy as np

from medfuse_bench import resources


class Discretizer:
    """The original's ``Discretizer`` (timestep 1 h, masks, 'previous' imputation, start time zero), loop for loop.

    Channels, one-hot categories and normal values come from the package's variable table, which holds the original's
    discretizer configuration.
    """

    def __init__(self, timestep: float = 1.0) -> None:
        variables = resources.variables()
        self._id_to_channel = [v["name"] for v in variables]
        self._channel_to_id = {c: i for i, c in enumerate(self._id_to_channel)}
        self._is_categorical_channel = {v["name"]: v["categorical"] for v in variables}
        self._possible_values = {v["name"]: [str(x) for x in v.get("possible_values", [])] for v in variables}
        self._normal_values = {v["name"]: str(v["normal_value"]) for v in variables}
        self._timestep = timestep

    def transform(self, X: np.ndarray, header: list[str], end: float) -> np.ndarray:
        eps = 1e-6
        n_channels = len(self._id_to_channel)
        first_time = 0
        max_hours = end - first_time
        n_bins = int(max_hours / self._timestep + 1.0 - eps)
        cur_len = 0
        begin_pos = [0 for _ in range(n_channels)]
        end_pos = [0 for _ in range(n_channels)]
        for i in range(n_channels):
            channel = self._id_to_channel[i]
            begin_pos[i] = cur_len
            if self._is_categorical_channel[channel]:
                end_pos[i] = begin_pos[i] + len(self._possible_values[channel])
            else:
                end_pos[i] = begin_pos[i] + 1
            cur_len = end_pos[i]
        data = np.zeros(shape=(n_bins, cur_len), dtype=float)
        mask = np.zeros(shape=(n_bins, n_channels), dtype=int)
        original_value = [["" for _ in range(n_channels)] for _ in range(n_bins)]

        def write(data: np.ndarray, bin_id: int, channel: str, value: str, begin_pos: list[int]) -> None:
            channel_id = self._channel_to_id[channel]
            if self._is_categorical_channel[channel]:
                category_id = self._possible_values[channel].index(value)
                n_values = len(self._possible_values[channel])
                one_hot = np.zeros((n_values,))
                one_hot[category_id] = 1
                for pos in range(n_values):
                    data[bin_id, begin_pos[channel_id] + pos] = one_hot[pos]
            else:
                data[bin_id, begin_pos[channel_id]] = float(value)

        for row in X:
            t = float(row[0]) - first_time
            if t > max_hours + eps:
                continue
            bin_id = int(t / self._timestep - eps)
            for j in range(1, len(row)):
                if row[j] == "":
                    continue
                channel = header[j]
                channel_id = self._channel_to_id[channel]
                mask[bin_id][channel_id] = 1
                write(data, bin_id, channel, row[j], begin_pos)
                original_value[bin_id][channel_id] = row[j]

        prev_values: list[list[str]] = [[] for _ in range(n_channels)]
        for bin_id in range(n_bins):
            for channel in self._id_to_channel:
                channel_id = self._channel_to_id[channel]
                if mask[bin_id][channel_id] == 1:
                    prev_values[channel_id].append(original_value[bin_id][channel_id])
                    continue
                if len(prev_values[channel_id]) == 0:
                    imputed_value = self._normal_values[channel]
                else:
                    imputed_value = prev_values[channel_id][-1]
                write(data, bin_id, channel, imputed_value, begin_pos)
        return np.hstack([data, mask.astype(np.float32)])


class Normalizer:
    """The original's ``Normalizer``: sums over every bin of the train samples; mean / std of the chosen columns."""

    def __init__(self, fields: list[int]) -> None:
        self._fields = fields
        self._sum_x: np.ndarray | None = None
        self._sum_sq_x: np.ndarray | None = None
        self._count = 0

    def feed(self, x: np.ndarray) -> None:
        x = np.array(x)
        self._count += x.shape[0]
        if self._sum_x is None:
            self._sum_x = np.sum(x, axis=0)
            self._sum_sq_x = np.sum(x**2, axis=0)
        else:
            self._sum_x += np.sum(x, axis=0)
            self._sum_sq_x += np.sum(x**2, axis=0)

    def fit(self) -> None:
        eps = 1e-7
        n = self._count
        self._means = 1.0 / n * self._sum_x
        self._stds = np.sqrt(1.0 / (n - 1) * (self._sum_sq_x - 2.0 * self._sum_x * self._means + n * self._means**2))
        self._stds[self._stds < eps] = eps

    def transform(self, x: np.ndarray) -> np.ndarray:
        ret = 1.0 * x
        for col in self._fields:
            ret[:, col] = (x[:, col] - self._means[col]) / self._stds[col]
        return ret
