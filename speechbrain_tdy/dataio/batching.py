"""Grouping recordings of similar lengths into batches: the one batcher of the
package (``embed_files`` and batch embedding), so that padding stays small."""


def length_batches(lengths, max_items=None, max_padded=None):
    """Indices into ``lengths`` in batches of similar lengths, longest first.

    A batch holds at most ``max_items`` items and at most ``max_padded``
    padded length (its item count times its longest item; an item longer
    than that is a batch of its own). None: no such limit.

    >>> length_batches([1.0, 5.0, 2.0, 4.0, 3.0], max_items=2)
    [[1, 3], [4, 2], [0]]
    >>> length_batches([100, 500, 200, 400, 300], max_padded=900)
    [[1], [3, 4], [2, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, batch = [], []
    for index in order:
        full = max_items is not None and len(batch) == max_items
        too_long = max_padded is not None and batch and (len(batch) + 1) * lengths[batch[0]] > max_padded
        if full or too_long:
            batches.append(batch)
            batch = []
        batch.append(index)
    return batches + [batch] if batch else batches
