"""A token's expanded neighbourhood: itself, its synonyms and their synonyms (DNE's two-hop neighbourhood), with the
Dirichlet concentration of each vertex."""

import torch

from .synonym_table import SynonymTable

__all__ = ["two_hop_neighbourhood"]


def two_hop_neighbourhood(table, size):
    """The `SynonymTable` whose row v is v, its synonyms, then their synonyms not yet in the row, in the table's order
    (WordNet's), at most `size` vertices (v included); and `(V,)` long `first_second_hop`, the column where v's
    second-hop neighbours start (1 + its synonyms kept; equal to the row's length when it has none).

    Raises ValueError for `size` < 2 (a neighbourhood needs the word and one neighbour).
    """
    if size < 2:
        raise ValueError(f"A neighbourhood of {size} vertices has no neighbour; it needs at least 2.")
    ids, counts = table.ids.cpu(), table.counts.cpu()
    rows, first_second_hop = [], torch.zeros(len(counts), dtype=torch.long)
    for v in range(len(counts)):
        first = ids[v, 1 : 1 + counts[v]].tolist()[: size - 1]
        row = [v, *first]
        seen = set(row)
        for s in first:
            for t in ids[s, 1 : 1 + counts[s]].tolist():
                if len(row) < size and t not in seen:
                    row.append(t)
                    seen.add(t)
        rows.append(row)
        first_second_hop[v] = 1 + len(first)
    width = max(len(row) for row in rows)
    expanded = torch.arange(len(rows))[:, None].repeat(1, width)  # padded with the token itself
    for v, row in enumerate(rows):
        expanded[v, : len(row)] = torch.tensor(row)
    lengths = torch.tensor([len(row) - 1 for row in rows])
    return SynonymTable(expanded, lengths), first_second_hop
