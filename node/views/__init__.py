"""Views: modules beside the engine's, each folding the log into an SQLite database
of its tables, and read-only SQL over them (docs/adr/0009-views.md).

Exported lazily: ``scnode sql`` needs the read-only query side only, without
loading the WebAssembly host.
"""

from typing import TYPE_CHECKING

from node._lazy import lazy_exports

if TYPE_CHECKING:
    from node.views._catalog import ENGINE_VIEW as ENGINE_VIEW
    from node.views._catalog import ViewCatalog as ViewCatalog
    from node.views._catalog import ViewEntry as ViewEntry
    from node.views._catalog import ViewError as ViewError
    from node.views._catalog import check_view_name as check_view_name
    from node.views._catalog import view_name_of as view_name_of
    from node.views._database import ViewDatabase as ViewDatabase
    from node.views._methods import register_view_methods as register_view_methods
    from node.views._service import ViewService as ViewService
    from node.views._sql import SqlAnswer as SqlAnswer
    from node.views._sql import SqlError as SqlError
    from node.views._sql import run_query as run_query
    from node.views._view import View as View
    from node.views._view import ViewOptions as ViewOptions

__getattr__, __dir__ = lazy_exports(__name__, __file__)
