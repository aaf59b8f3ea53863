--  Saturating arithmetic for the flight counters, proved free of overflow.
package Saturating with SPARK_Mode is

   Max : constant := 1_000_000;

   subtype Count is Natural range 0 .. Max;

   function Add (A, B : Count) return Count
     with Post => Add'Result = (if A + B > Max then Max else A + B);

   procedure Increment (C : in out Count)
     with Post => (if C'Old = Max then C = Max else C = C'Old + 1);

end Saturating;
