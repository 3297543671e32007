"""Document knowledge: company files turned into text that assistants can search and cite.

The first stage, file to chunks:

- ``parse``: a file (PDF, Word, PowerPoint, Excel, CSV, HTML, Markdown, text) checked
  against hostile input and read into a ``ParsedDocument`` of ``Section`` blocks, each under
  its headings;
- ``chunk``: a ``ParsedDocument`` cut into ``Chunk`` pieces that respect its headings,
  Chinese and English alike, each with offsets back into the document's text.

The parser libraries come with the ``knowledge`` extra and are imported only when a file of
their type is read, so importing this package costs nothing without them.
"""

from __future__ import annotations

from graft.knowledge.chunk import Chunk, chunk_document
from graft.knowledge.document import ParsedDocument, Section
from graft.knowledge.parse import SUPPORTED, parse_bytes, parse_file

__all__ = [
    "SUPPORTED",
    "Chunk",
    "ParsedDocument",
    "Section",
    "chunk_document",
    "parse_bytes",
    "parse_file",
]
