import contextlib
import io
import unittest

from {{name}} import hello


class HelloTest(unittest.TestCase):
    def test_reports_progress_to_the_end(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(hello.main(2), 0)
        self.assertIn("::progress:: 1.00", out.getvalue())


if __name__ == "__main__":
    unittest.main()
