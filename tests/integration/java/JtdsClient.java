// A JDBC client for the end-to-end tests (jTDS, and pgJDBC for PostgreSQL):
// connects with the JDBC URL it is given, runs each query in turn and prints
// each row's columns joined by '|', one row a line; on failure prints
// "ERROR: " and the SQLException chain and exits 1. tests/CMakeLists.txt
// compiles it into the build tree once:
//   java -cp /usr/share/java/jtds.jar:BUILD/tests/java JtdsClient URL USER PASSWORD SQL [SQL...]
//   java -cp /usr/share/java/postgresql.jar:BUILD/tests/java JtdsClient jdbc:postgresql://... ...
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;

public class JtdsClient {
  public static void main(String[] args) throws Exception {
    if (args.length < 4) {
      System.err.println("usage: JtdsClient URL USER PASSWORD SQL [SQL...]");
      System.exit(2);
    }
    // jTDS 1.3 predates JDBC 4 driver discovery; pgJDBC registers itself.
    if (args[0].startsWith("jdbc:jtds:")) Class.forName("net.sourceforge.jtds.jdbc.Driver");
    DriverManager.setLoginTimeout(20);
    try (Connection c = DriverManager.getConnection(args[0], args[1], args[2]);
         Statement s = c.createStatement()) {
      for (int q = 3; q < args.length; q++) {
        try (ResultSet r = s.executeQuery(args[q])) {
          ResultSetMetaData md = r.getMetaData();
          while (r.next()) {
            StringBuilder line = new StringBuilder();
            for (int i = 1; i <= md.getColumnCount(); i++) {
              if (i > 1) line.append('|');
              line.append(r.getString(i));
            }
            System.out.println(line);
          }
        }
      }
    } catch (SQLException e) {
      for (Throwable t = e; t != null; t = t.getCause()) System.out.println("ERROR: " + t);
      System.exit(1);
    }
  }
}
